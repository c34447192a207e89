"""What every request handler reaches: the services and helpers the API process opened at start."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import Request

from posepipe.api.analyses import UploadAnalyses
from posepipe.services import Services
from posepipe.settings import Settings
from storage.db import Database
from storage.secret_box import SecretBox

# Under the data dir: uploaded videos, stored by content hash (never by the client's name).
UPLOADS_DIR = "uploads"
# Under the uploads dir: uploads still arriving (`<random>.part`), removed when they fail.
INCOMING_DIR = ".incoming"
# Under the data dir: clips being encoded, removed once sent.
RENDER_DIR = "render"


@dataclass
class ApiState:
    settings: Settings
    services: Services
    analyses: UploadAnalyses

    @property
    def db(self) -> Database:
        return self.services.db

    @property
    def uploads_dir(self) -> Path:
        return self.settings.data_dir / UPLOADS_DIR

    @property
    def incoming_dir(self) -> Path:
        return self.uploads_dir / INCOMING_DIR

    @property
    def render_dir(self) -> Path:
        return self.settings.data_dir / RENDER_DIR

    def secret_box(self) -> SecretBox:
        return self.services.secret_box()

    def make_dirs(self) -> None:
        for path in (self.uploads_dir, self.incoming_dir, self.render_dir):
            path.mkdir(parents=True, exist_ok=True)


def get_api(request: Request) -> ApiState:
    return request.app.state.api
