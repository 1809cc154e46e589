"""evaluate.py's parts: what does a model know about the documents?

eval_set (the questions and references), candidates (the models asked, and the
check that they answer), asking (the conditions: closed book, RAG, oracle;
the answers and the judge's votes), stats (accuracy with intervals, paired
differences) and report (eval_report.json, eval_report.md, eval_answers.jsonl).
"""
