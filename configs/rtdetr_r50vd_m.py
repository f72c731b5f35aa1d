# RT-DETR-R50vd-m, the paper's medium R50 (51.3 AP): the R50vd encoder at
# expansion 0.5, and the decoder's first 3 of 6 layers at test time
# (official eval_idx 2; all 6 train).
_base_ = './rtdetr_r50vd.py'

model = dict(neck=dict(expansion=0.5), decoder=dict(eval_idx=2))
