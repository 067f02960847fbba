"""Engine-agnostic program scheduling core (imported as ``dynasor.scheduler``); no SGLang imports."""
