# RT-DETR-RIFormer-S12 in bfloat16 mixed precision, on GPUs or CPUs: autocast
# without loss scaling (bfloat16 has float32's range). Anchors, box logits,
# matching costs and losses stay in float32.
_base_ = './rtdetr_riformer_s12.py'

optim_wrapper = dict(type='AutocastOptimWrapper', dtype='bfloat16')
