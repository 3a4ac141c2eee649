"""Runs a command's entry point once per line of arguments (JSON lists on stdin) in this one
process, printing for each its exit status and stderr as one JSON line."""

import contextlib
import importlib
import io
import json
import sys
import traceback


def run_once(module: str, args: list[str]) -> dict:
    main = importlib.import_module(module).main
    sys.argv = [module, *args]
    stderr = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            main()
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException:
            traceback.print_exc(file=stderr)
            code = -1
    return {"code": code, "stderr": stderr.getvalue()}


if __name__ == "__main__":
    for line in sys.stdin:
        module, *args = json.loads(line)
        print(json.dumps(run_once(module, args)), flush=True)
