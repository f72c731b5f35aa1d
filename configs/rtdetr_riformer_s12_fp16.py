# RT-DETR-RIFormer-S12 in float16 mixed precision on GPUs: autocast with a
# dynamic loss scaler (the same as mmdet's --amp). Anchors, box logits,
# matching costs and losses stay in float32.
_base_ = './rtdetr_riformer_s12.py'

optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
