"""Operations: start-up dependency checks (deps), metrics, preflight (-T), detection self-test, trail reload, retries."""
