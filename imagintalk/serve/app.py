"""HTTP serving on Ray Serve: POST a video, get a wav.

- ``POST /speak`` body = the video bytes (any container PyAV reads) → ``audio/wav``. The emotion
  is read from the face; ``?emotion=happy`` (a vocabulary name) overrides it, and a name outside
  the vocabulary is a 400 listing the vocabulary.
  413 when the body exceeds ``serve.max_request_bytes`` (checked on the header and while reading,
  so a lying client cannot push more), 400 for an empty body, 422 with a one-line reason for input
  the pipeline refuses (unreadable, too long, no face). A bad request never reaches the batch, so
  it cannot harm the others.
- ``GET /healthz`` → 200 with the model URI once the replica has loaded its model.
Requests are batched by Ray Serve (``serve.max_batch_size`` within ``serve.batch_wait_timeout_s``)
into one replica call; inside it each clip is generated on its own, so the speech a user gets never
depends on which other requests shared the batch (the sampler is seeded per call).
Binds 127.0.0.1 by default; RAY_ADDRESS selects a cluster.
"""


import io
import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from ray import serve

from imagintalk.config import Params
from imagintalk.emotions import emotion_override
from imagintalk.errors import ImaginTalkError
from imagintalk.ray_session import start_ray

HEALTH_PATH = "/healthz"
SPEAK_PATH = "/speak"
EMOTION_FIELD = "emotion"   # query parameter of POST /speak: overrides the face's emotion
APP_NAME = "imagintalk"

api = FastAPI(title="ImaginTalk", description="silent video -> speech")


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": reason})


@serve.deployment(ray_actor_options={"num_cpus": 1})
@serve.ingress(api)
class SpeakService:
    def __init__(self, model_uri: str, params_json: str, env: dict[str, str] | None = None):
        os.environ.update(env or {})
        from imagintalk.serve.inference import Speaker

        self.params = Params.model_validate_json(params_json)
        self.speaker = Speaker(model_uri, self.params, owns_process=True)  # a replica is its own process
        self.model_uri = model_uri
        self._batched.set_max_batch_size(self.params.serve.max_batch_size)
        self._batched.set_batch_wait_timeout_s(self.params.serve.batch_wait_timeout_s)

    @api.get(HEALTH_PATH)
    async def health(self) -> dict[str, str]:
        return {"status": "ok", "model": self.model_uri}

    @api.post(SPEAK_PATH)
    async def speak(self, request: Request) -> Response:
        limit = self.params.serve.max_request_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return _error(413, f"request body of {int(declared)} bytes exceeds the {limit}-byte limit")
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > limit:
                return _error(413, f"request body exceeds the {limit}-byte limit")
        if not body:
            return _error(400, "empty body: POST the video file's bytes")
        emotion = request.query_params.get(EMOTION_FIELD)
        try:
            emotion_override(emotion)
        except ImaginTalkError as exc:
            return _error(400, str(exc))
        with tempfile.TemporaryDirectory(prefix="imagintalk-serve-") as tmp:
            path = Path(tmp) / "upload.mp4"
            path.write_bytes(bytes(body))
            result = await self._batched((str(path), emotion))
        if isinstance(result, ImaginTalkError):
            return _error(422, result.reason)
        buf = io.BytesIO()
        sf.write(buf, result, self.speaker.sample_rate, format="WAV", subtype="PCM_16")
        return Response(content=buf.getvalue(), media_type="audio/wav")

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.05)
    async def _batched(self, requests: list[tuple[str, str | None]]) -> list[np.ndarray | ImaginTalkError]:
        return self.speaker.speak_batch([p for p, _ in requests], max_duration_s=self.params.serve.max_duration_s,
                                        emotions=[e for _, e in requests])


def build_app(model_uri: str, params: Params) -> serve.Application:
    from imagintalk.settings import ENV_MLFLOW_TRACKING_URI, ENV_S3_ENDPOINT, ENV_STORAGE_ROOT

    env = {k: os.environ[k] for k in (ENV_MLFLOW_TRACKING_URI, ENV_STORAGE_ROOT, ENV_S3_ENDPOINT) if k in os.environ}
    return SpeakService.options(num_replicas=params.serve.replicas).bind(model_uri, params.model_dump_json(), env)


def start_server(model_uri: str, params: Params, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Start (non-blocking) on local Ray, or the cluster named by RAY_ADDRESS."""
    start_ray()
    serve.start(http_options={"host": host, "port": port})
    serve.run(build_app(model_uri, params), name=APP_NAME, route_prefix="/", blocking=False)


def run_server(model_uri: str, params: Params, host: str = "127.0.0.1", port: int = 8000) -> None:
    """`imagintalk serve`: start and block until interrupted."""
    import time

    start_server(model_uri, params, host, port)
    print(f"serving {model_uri} on http://{host}:{port}{SPEAK_PATH} (health: {HEALTH_PATH}); Ctrl-C stops")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()
