# One image for every Baton service; the Deployment picks the service with its command,
# e.g. ["python", "-m", "services.router"]. Built from the repository root so the shared library
# is installed once, never copied into a service.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY baton ./baton
COPY services ./services
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --no-create-home baton
COPY --from=build /install /usr/local
USER 10001
ENV PYTHONUNBUFFERED=1 \
    BATON_ENVIRONMENT=production \
    BATON_SMTP_HOST=0.0.0.0 \
    BATON_ADMIN_HOST=0.0.0.0 \
    BATON_API_HOST=0.0.0.0
EXPOSE 2525 8080 9100
ENTRYPOINT ["python", "-m"]
CMD ["services.ingress"]
