"""Search over the pipeline's chunks: a lexical (BM25) index, optionally fused with embeddings.

    from retrieval import open_retriever
    retriever, stats = open_retriever(config)        # builds or updates the index on disk
    hits = await retriever.search("How do I stake?")   # [Hit(source, position, text, ...)]

Modules: text (fields and queries), corpus (which chunks), index (SQLite FTS5),
embeddings (an OpenAI-compatible /embeddings client), search (the Retriever),
chat_client and chat_session (answering with the retrieved chunks).
"""
