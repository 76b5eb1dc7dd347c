# singlestrip_bids as a BIDS App container.
#
#   docker build -t singlestrip_bids .
#   docker run --rm -v /data/bids:/bids:ro -v /data/out:/out singlestrip_bids /bids /out participant
#
# The default base is a slim Python image: torch from PyPI brings its own CUDA libraries, so the
# same image runs on CPUs and, with `docker run --gpus all`, on NVIDIA GPUs (only the host driver
# is needed). BASE_IMAGE may name any Debian-like image with python3 (>= 3.10) and its venv module.
# A pip mirror, proxy CA or local wheel folder can be handed to the build without entering the
# image, as BuildKit secrets: `--secret id=pip.conf,src=...` (mounted as /etc/pip.conf) and
# `--secret id=ca-bundle,src=...` (mounted as /run/secrets/ca-bundle). See docs/containers.md.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
RUN python3 -m venv /opt/singlestrip
ENV PATH=/opt/singlestrip/bin:$PATH
# torch first, in its own layer: it is by far the largest download and changes least often.
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    --mount=type=secret,id=ca-bundle,target=/run/secrets/ca-bundle \
    pip install --no-cache-dir torch==2.13.0
COPY . /src
# The demo extra (the pydeface average head) lets the image check itself: see singularity.def %test.
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    --mount=type=secret,id=ca-bundle,target=/run/secrets/ca-bundle \
    pip install --no-cache-dir "/src[demo]"

FROM ${BASE_IMAGE}
ARG VERSION=unknown
ARG SOURCE_URL=unknown
ARG REVISION=unknown
LABEL org.opencontainers.image.title="singlestrip_bids" \
      org.opencontainers.image.description="BIDS App: MRI skull-stripping learned from a single labeled example" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/singlestrip /opt/singlestrip
# /work is the default Nipype work dir; world-writable (sticky) so that any `--user` may use it.
RUN groupadd --gid 1000 singlestrip \
    && useradd --no-log-init --create-home --uid 1000 --gid 1000 singlestrip \
    && install -d -m 1777 /work
# One thread per process unless --omp-nthreads says otherwise: OpenMP and MKL would otherwise
# start one thread per host core in every Nipype worker, whatever the container's CPU quota.
# Caches go to /tmp so that the image also runs with --read-only (and /tmp on a tmpfs); the app
# contacts no server: Nipype's version check and Deno's update check are off.
ENV PATH=/opt/singlestrip/bin:$PATH \
    HOME=/home/singlestrip \
    LANG=C.UTF-8 \
    OMP_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    XDG_CACHE_HOME=/tmp/.cache \
    DENO_DIR=/tmp/.cache/deno \
    DENO_NO_UPDATE_CHECK=1 \
    NIPYPE_NO_ET=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
# Numeric, so that runtimes enforcing a non-root user can check it without /etc/passwd.
USER 1000:1000
WORKDIR /work
ENTRYPOINT ["singlestrip_bids"]
