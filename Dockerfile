# The labelloop image: the `topics` and `worker` services of docker-compose.yml.
# Kafka itself runs from the official apache/kafka image, not from this one.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY . .
RUN pip install . \
    && useradd --create-home --uid 10001 labelloop

# faust keeps table state under the working directory: make it the user's own.
USER labelloop
WORKDIR /home/labelloop

# faust's web server (metrics, health)
EXPOSE 6066
CMD ["labelloop", "worker"]
