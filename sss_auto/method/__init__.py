"""The SSS method as pure pieces: the training steps and their losses, pseudo labels, thresholds, alignment.

No loop, optimizer or data loading lives here, so the trainer (`sss_auto.training`) and the
planner's memory estimate (`planners.memory`) run the same step.
"""
