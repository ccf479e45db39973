"""The persistence layer shared by the API and the worker: settings, database, models,
repositories, API keys and the artifact store. Torch-free and HTTP-free."""
