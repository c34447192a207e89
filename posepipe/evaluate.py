"""`posepipe eval`: analyse every labelled clip with the normal pipeline and score the stored events."""

from __future__ import annotations

from pathlib import Path

from analytics.evaluation import EvalReport, load_truth, score_clip
from posepipe import analyze as analysis
from posepipe.services import Services
from storage import events as stored_events
from storage.models import Video


def evaluate(
    services: Services, media_dir: Path, truth_path: Path, workers: int | None = None, only: str | None = None
) -> EvalReport:
    truth = {rel: t for rel, t in load_truth(truth_path).items() if not only or only in rel}
    missing = [rel for rel in truth if not (media_dir / rel).is_file()]
    if missing:
        raise FileNotFoundError(f"clips named in {truth_path} are missing: {', '.join(missing[:5])}")
    options = analysis.AnalyzeOptions(fps=services.settings.analysis_fps, workers=workers)
    targets = {rel: analysis.plan(services, str(media_dir / rel), options) for rel in sorted(truth)}
    analysis.run(services, list(targets.values()), options)
    scores = []
    with services.db.session() as session:
        for rel, target in targets.items():
            video = session.get(Video, target.video_id) if target.video_id is not None else None
            if video is None or video.status.value != "done":
                raise RuntimeError(f"{rel}: analysis failed: {video.error if video else target.error}")
            found = [stored_events.to_event(r) for r in stored_events.list_events(session, video_id=video.id)]
            scores.append(score_clip(truth[rel], found, video.duration_s or 0.0))
    return EvalReport(scores)
