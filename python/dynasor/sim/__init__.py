"""``dynasor simulate``: a discrete-event model of one SGLang engine that orders its queue with the
real ``dynasor.scheduler`` code, for scheduling studies at a scale this machine cannot serve."""
