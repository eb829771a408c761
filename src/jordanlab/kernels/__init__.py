"""jordanlab.kernels"""
