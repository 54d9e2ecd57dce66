import sys

from redblue.app import warm

argv = sys.argv[1:]
if argv == [warm.AWAIT]:  # started before it knows its command (a simulation's processor)
    ordered = warm.receive()
    if ordered is None:
        sys.exit(0)
    argv = ordered
elif "simulate" in argv[:2]:  # its processor imports while this process imports and plans
    warm.prestart()

from redblue.app.cli import main  # noqa: E402

sys.exit(main(argv))
