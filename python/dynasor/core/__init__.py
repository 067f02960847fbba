"""The dependency-free core every layer imports: the program tag, what a request returns
(``Generation``) and what a program answers (``ProgramResult``), the backend interface programs
run on, per-token statistics, and small helpers with one home each (abort of dispatched requests,
sliding-window minimum, quantile). Nothing here imports SGLang, torch or an HTTP library."""
