import signal
import sys

import streamer

if sys.argv[1:2] == ["run"]:  # first thing, before the imports below (0.1 s under load): a stop signal is kept
    for _number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(_number, lambda signum, _frame: streamer.EARLY_SIGNALS.append(signum))

from streamer.cli import main  # noqa: E402

sys.exit(main())
