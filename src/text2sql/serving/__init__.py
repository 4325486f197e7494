"""`text2sql predict` and `text2sql serve`: one loaded model answering with SQL only.

answering.py (the Answerer: schemas, prompts, candidates, checks, vote, repairs; every front end's path),
answer_models.py (the models it asks: the served engine, a local one, an endpoint), repair.py (checks and the
repair question), errors.py (what stops an answer), limits.py (what one request may ask), engine.py
(micro-batching queue), app.py (FastAPI routes and the error → status table), streams.py (server-sent
events), guard.py (API key, body limit), openai_schema.py (request/response bodies), questions.py (question +
schema from a request), databases.py (--db-dir), predict.py, server.py.
"""
