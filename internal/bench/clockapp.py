# The classic answer to the clock exercise, the yardstick clock-web's /clock
# is held to: FastAPI under uvicorn (uvloop, httptools), behind nginx.
# internal/bench writes it to its temp folder for one run.
import time

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

app = FastAPI()


@app.get("/clock", response_class=PlainTextResponse)
async def clock():
    return str(time.time())
