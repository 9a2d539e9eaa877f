"""The ``hti`` command line (click). Entry point: :func:`hti.cli.main.cli`."""
