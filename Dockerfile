# One image for the monitor and the sample model (the sidecar will get a light one).
FROM python:3.11-slim
WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
COPY monitor ./monitor
COPY collectors ./collectors
RUN pip install --no-cache-dir uv==0.13.9 \
    && uv pip install --system --no-cache -r requirements.lock \
    && uv pip install --system --no-cache --no-deps .
USER nobody
EXPOSE 8700
CMD ["sidewatch", "serve"]
