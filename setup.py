# Copyright (c) OpenMMLab. All rights reserved.
from setuptools import find_packages, setup


def read_version():
    namespace = {}
    with open('mmriformer/version.py') as f:
        exec(f.read(), namespace)
    return namespace['__version__']


def parse_requirements(path):
    with open(path) as f:
        return [
            line.strip() for line in f
            if line.strip() and not line.startswith('#')
        ]


setup(
    name='mmriformer',
    version=read_version(),
    description='RIFormer backbones and RT-DETR detectors for MMDetection',
    packages=find_packages(exclude=('configs', 'tools', 'tests')),
    include_package_data=True,
    python_requires='>=3.8',
    install_requires=parse_requirements('requirements/runtime.txt'),
    extras_require={
        'tests': parse_requirements('requirements/tests.txt'),
        'optional': parse_requirements('requirements/optional.txt'),
        'mim': parse_requirements('requirements/mminstall.txt'),
    },
    zip_safe=False)
