"""Scores follow today's decay without anyone running a command: each serving process's
refresh thread (capture.scoring.apply.start_refresher, started by gunicorn in every worker)."""

from __future__ import annotations

import shutil
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from capture.db.models import Lead, utcnow
from capture.db.store import get_store
from capture.leads.submission import record_submission
from capture.scoring.apply import get_scoring, start_refresher
from test_store import new

SHIPPED = Path(__file__).resolve().parent.parent / "content"


def with_starter_rules(content_dir: Path) -> None:
    shutil.copy(SHIPPED / "scoring.yml", content_dir / "scoring.yml")
    shutil.copytree(SHIPPED / "scoring", content_dir / "scoring")


def stored(app, email: str) -> Lead:
    with get_store(app).read() as s:
        return s.scalars(select(Lead).where(Lead.email == email)).one()


def test_a_running_service_brings_old_scores_to_todays_decay(make_app, content_dir):
    with_starter_rules(content_dir)
    app = make_app(SCORE_REFRESH_SECONDS=0.05)
    sixty_days_ago = utcnow() - timedelta(days=60)
    with app.app_context():
        record_submission(get_store(app), new("ann@acme-corp.example", resource_id="scoring",
                                              created_at=sixty_days_ago), get_scoring(app))
    then = stored(app, "ann@acme-corp.example")
    # Scored as of the post: a whitepaper's 25 points, undecayed.
    assert (then.engagement, then.scored_at) == (25, sixty_days_ago)

    refresher = start_refresher(app)
    try:
        deadline = time.monotonic() + 10
        while stored(app, "ann@acme-corp.example").scored_at == sixty_days_ago:
            assert time.monotonic() < deadline, "the refresh thread did not rescore the lead"
            time.sleep(0.05)
    finally:
        refresher.stop()
    now = stored(app, "ann@acme-corp.example")
    # Two half-lives later: a quarter of the points.
    assert now.engagement == 6
    assert now.scored_at.date() == utcnow().date()
    assert "60 days ago" in now.score_reasons
    assert start_refresher(app) is refresher  # one thread per process
