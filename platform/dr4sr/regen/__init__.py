"""DR4SR regenerator (paper §4.2): model, pre-training, hybrid decoding, regenerated-dataset stages.

Entry points: `dr4sr.stages.variants.regeneration` (the stage chain), `dr4sr.regen.stage.training_sequences`,
`dr4sr.regen.config.build_regen_config`; CLI `dr4sr pretrain` / `dr4sr regenerate` (regen/cli.py).
"""
