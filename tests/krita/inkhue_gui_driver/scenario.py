"""The base of the GUI scenarios the driver runs by ``cfg["scenario"]``."""

from __future__ import annotations


class Scenario:
    """A scenario: ``start()`` runs it on the driver ``d`` (its config ``cfg``); what it
    records goes into ``out``, which is ``driver.result[name]`` for pytest to judge."""

    name = ""  #: the scenario's name in cfg["scenario"] and its key in the result

    def __init__(self, driver) -> None:
        self.d = driver
        self.cfg = driver.cfg
        self.out: dict = {}
        driver.result[self.name] = self.out

    def start(self) -> None:
        raise NotImplementedError
