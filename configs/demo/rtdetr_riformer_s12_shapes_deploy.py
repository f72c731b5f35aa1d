# The demo model in deploy form: load a checkpoint written by
# tools/model_converters/reparameterize.py.
_base_ = './rtdetr_riformer_s12_shapes.py'

model = dict(backbone=dict(deploy=True), neck=dict(deploy=True))
