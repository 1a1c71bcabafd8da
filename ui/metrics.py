"""Prometheus metrics of one server (its own registry, so several apps in one process do not collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from rag.types import Answer

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("rag_http_requests", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("rag_http_request_seconds", "HTTP request time by route (streams: whole stream)",
                                 ["route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.stage = Histogram("rag_answer_stage_seconds", "time per pipeline stage",
                               ["stage", "mode"], buckets=_LATENCY_BUCKETS, registry=r)
        self.answers = Counter("rag_answers", "answers by mode and outcome (answered, refused, fallback)",
                               ["mode", "outcome", "route"], registry=r)
        self.refusals = Counter("rag_refusals", "refusals by reason", ["reason", "mode"], registry=r)
        self.errors = Counter("rag_errors", "errors by type", ["error"], registry=r)
        self.llm_queue = Gauge("rag_llm_queue_in_flight", "local-LLM requests running or waiting", registry=r)
        self.documents = Gauge("rag_documents", "documents in the index", registry=r)
        self.feedback = Counter("rag_feedback", "feedback by rating", ["rating"], registry=r)

    def observe_answer(self, answer: Answer, route: str) -> None:
        outcome = "refused" if answer.refused else ("fallback" if answer.fallback else "answered")
        self.answers.labels(mode=answer.mode, outcome=outcome, route=route).inc()
        if answer.refused:
            self.refusals.labels(reason=answer.refusal_reason or "unknown", mode=answer.mode).inc()
        for stage, seconds in answer.seconds.items():
            self.stage.labels(stage=stage, mode=answer.mode).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
