"""The ``shadowbench`` command line, above both halves: the harness (``bench``) and the cost analysis
(``analysis``) each register their own commands here; neither imports the other's."""
