"""The SSS trainer as composition: build, loop, EMA, PCSW bank, budget, progress, DDP; the step itself is in sss_auto.method."""
