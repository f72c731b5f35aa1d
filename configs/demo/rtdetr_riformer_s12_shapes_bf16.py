# The CPU demo in bfloat16 mixed precision (autocast, no loss scaling).
_base_ = './rtdetr_riformer_s12_shapes.py'

optim_wrapper = dict(type='AutocastOptimWrapper', dtype='bfloat16')
