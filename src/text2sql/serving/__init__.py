"""`text2sql predict` and `text2sql serve`: one loaded model answering with SQL only.

engine.py (micro-batching queue), backends.py (transformers, vLLM), app.py (FastAPI endpoints), guard.py (API key, body
limit), openai_schema.py (request/response bodies), questions.py (question + schema from a request),
databases.py (--db-dir), repair.py (check + repair loop), predict.py, server.py, cli_args.py.
"""
