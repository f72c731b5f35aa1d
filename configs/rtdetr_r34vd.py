# RT-DETR-R34vd, the paper's baseline (4 decoder layers, expansion 0.5).
_base_ = './rtdetr_r18vd.py'

model = dict(backbone=dict(depth=34), decoder=dict(num_layers=4))
