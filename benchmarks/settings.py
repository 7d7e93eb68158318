"""How much of everything benchmarks/run.py runs: the full settings and the smoke test's."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Settings:
    """How much of everything to run."""

    inproc_requests: int = 200
    inproc_repeats: int = 20
    loop_requests: int = 50
    loop_repeats: int = 30
    threads: int = 32
    per_thread: int = 200
    lifetime: float = 3.0  # run 3's token lifetime, seconds (an integer: several libraries int() it)
    lifetimes_spanned: float = 3.5
    token_delay: float = 0.075
    outage_lifetime: float = 3.0
    outage_duration: float = 15.0
    outage_start: float = 2.0
    outage_length: float = 10.0
    # Run 4b: a short outage inside reqcc's renewal window, over before the token runs out
    # (the situation a real 10 s outage is in against a 1-hour token), as fractions of a lifetime.
    short_lifetime: float = 4.0
    short_outage: tuple[float, float] = (0.75, 0.92)
    short_duration: float = 1.25
    memory_sessions: int = 20
    import_repeats: int = 3

    @classmethod
    def quick(cls) -> Settings:
        """One tiny iteration of everything: for the smoke test, not for numbers."""
        return cls(
            inproc_requests=20, inproc_repeats=1, loop_requests=10, loop_repeats=1,
            threads=3, per_thread=4, lifetime=1.0, lifetimes_spanned=0.15, token_delay=0.01,
            outage_lifetime=1.0, outage_duration=0.25, outage_start=0.05, outage_length=0.1,
            short_lifetime=1.0, short_outage=(0.05, 0.1), short_duration=0.15,
            memory_sessions=2, import_repeats=1,
        )
