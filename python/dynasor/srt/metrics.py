"""Program-level Prometheus metrics, exported by SGLang's ``/metrics`` (``--enable-metrics``).

Created in the scheduler process like SGLang's own scheduler metrics: prometheus_client writes them
to SGLang's multiprocess directory and the main process serves them with everything else.
"""

from __future__ import annotations

from typing import Any

PROGRAM_LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600)


class ProgramMetrics:
    def __init__(self, labels: dict[str, str]) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        names = list(labels)
        self.labels = labels
        self.started = Counter("dynasor:programs_started_total", "Programs seen for the first time.", names)
        self.done = Counter("dynasor:programs_done_total", "Programs whose last request ended.", names)
        self.aborted_requests = Counter("dynasor:program_requests_aborted_total",
                                        "Requests of programs that ended by abort.", names)
        self.escalations = Counter("dynasor:program_escalations_total",
                                   "Programs escalated by the starvation guard.", names)
        self.live = Gauge("dynasor:live_programs", "Programs with a waiting or running request.", names,
                          multiprocess_mode="mostrecent")
        self.latency = Histogram("dynasor:program_latency_seconds",
                                 "First arrival to last request end, per program.", names,
                                 buckets=PROGRAM_LATENCY_BUCKETS)
        # Touch every series so it is exported (as 0) before its first event.
        for metric in (self.started, self.done, self.aborted_requests, self.escalations, self.live, self.latency):
            metric.labels(**labels)
        self.live.labels(**labels).set(0)

    def on_started(self) -> None:
        self.started.labels(**self.labels).inc()

    def on_request_ended(self, aborted: bool, done_program: Any, live_programs: int) -> None:
        if aborted:
            self.aborted_requests.labels(**self.labels).inc()
        if done_program is not None:
            self.done.labels(**self.labels).inc()
            self.latency.labels(**self.labels).observe(done_program.idle_since - done_program.first_arrival)
        self.live.labels(**self.labels).set(live_programs)

    def on_escalated(self) -> None:
        self.escalations.labels(**self.labels).inc()
