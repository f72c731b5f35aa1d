# RT-DETR-RIFormer-S12 whose encoder and decoder start from the official
# RT-DETR-R18vd COCO weights (same widths, expansion 0.5, 3 decoder layers)
# and whose backbone starts from RIFormer-S12's ImageNet weights (init_cfg).
#
#   python tools/model_converters/rtdetr_official.py \
#       PekingU/rtdetr_r18vd checkpoints/rtdetr_r18vd_coco.pth
#
# load_from is loaded non-strictly after the backbone's init. What does not
# fit is logged and left as initialised: the PResNet backbone keys
# (unexpected), the 1x1 input projection of the stride-16 level (RIFormer
# has 320 channels there, ResNet 256), and on other data the class heads
# and the denoising label table.
_base_ = './rtdetr_riformer_s12.py'

load_from = 'checkpoints/rtdetr_r18vd_coco.pth'
