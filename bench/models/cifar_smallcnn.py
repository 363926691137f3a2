"""A small float CNN for the CIFAR-10 search benchmark (issue 3), brought in as a user model.

3 x (3x3 conv, BN, ReLU, 2x2 max-pool) with 16/32/64 filters, then one linear layer: ~34k
parameters, small enough for 2 CPU cores. bitswarm quantizes it per layer (models/custom.py):
    bitswarm compare --model bench/models/cifar_smallcnn.py:build --dataset cifar10 ...
"""

from torch import nn


def build() -> nn.Module:
    layers, cin = [], 3
    for cout in (16, 32, 64):
        layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]
        cin = cout
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(64 * 4 * 4, 10))
