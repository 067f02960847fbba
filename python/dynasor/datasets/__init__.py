"""Problems to run: the shared math datasets (``loaders``), generated arithmetic word problems with
difficulty levels and the 3-shot prompt (``arithmetic``), and labelled prompts (``labelled``).

In the package, not in ``benchmark/``, because package commands need them too
(``dynasor calibrate --generate``)."""
