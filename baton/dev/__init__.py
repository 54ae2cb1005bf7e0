"""Development and test tooling: the embedded broker, a local sink, and the process supervisor
behind `make run`. Nothing here runs in production."""
