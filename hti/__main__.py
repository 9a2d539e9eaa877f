"""``python -m hti``: the hti command (also for ``torchrun -m hti deep ...``)."""

from hti.cli.main import cli

if __name__ == "__main__":
    cli(prog_name="hti")
