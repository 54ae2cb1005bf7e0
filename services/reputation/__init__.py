"""The reputation service: records each message's timeline and serves it over HTTP."""
