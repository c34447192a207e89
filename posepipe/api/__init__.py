"""The REST API and the web UI's server (`posepipe api`): FastAPI routes over storage and the query side.

`app.create_app(settings)` builds the application; its lifespan opens the services, the
upload analyser and a webhook dispatcher. Routes live in one module per resource
(`videos`, `cameras`, `events`, `webhooks`, `system`); the pictures and clips they serve are
drawn by `media`, uploads are received by `uploads` and analysed by `analyses`.
"""
