"""Presentation of saved results, one job per module, none of them importing torch:

- :mod:`.format`: how a number reads (loss, accuracy, rate, parameters, time, sparkline);
- :mod:`.layout`: which rows and columns a screen or a compare shows (tables and exports share it);
- :mod:`.tables`: the rich tables of a screen and a compare;
- :mod:`.exports`: JSON, CSV and Markdown of a screen and a compare;
- :mod:`.plots`: the PNG figures (matplotlib, imported when a figure is drawn);
- :mod:`.console`: what a command prints at the end of a study or for ``alrao report``;
- :mod:`.live`: progress while a study runs; :mod:`.check`: ``alrao check``'s table, JSON and JUnit.
"""
