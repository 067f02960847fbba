"""The application side of the OpenAI endpoints' dynasor modes (``cot``, ``sc``): request options,
the program run, the answer and the response shapes. No SGLang import: the server's hooks
(``dynasor.srt.openai_mode_hooks``) adapt SGLang's requests to it."""
