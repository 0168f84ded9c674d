"""The background thread of Trainer.learn: one call in flight, finished in order in the caller's thread."""

import threading

import pytest

from streamer.core.overlap import Overlap


def test_calls_run_one_at_a_time_in_order_and_finish_in_the_caller_thread():
    overlap, log, caller = Overlap(), [], threading.get_ident()
    running = threading.Lock()

    def work(number):
        def run():
            assert running.acquire(blocking=False), "two calls in flight"
            try:
                assert threading.get_ident() != caller
                log.append(("work", number))
                return number
            finally:
                running.release()
        return run

    def finish(result):
        assert threading.get_ident() == caller
        log.append(("finish", result))

    for number in range(5):
        overlap.start(work(number), finish)
    assert overlap.busy
    overlap.settle()
    assert not overlap.busy
    assert log == [(kind, number) for number in range(5) for kind in ("work", "finish")]
    overlap.close()


def test_an_error_in_the_background_is_raised_at_settle():
    overlap = Overlap()
    overlap.start(lambda: 1 / 0, lambda result: None)
    with pytest.raises(ZeroDivisionError):
        overlap.settle()
    assert not overlap.busy
    overlap.close()
