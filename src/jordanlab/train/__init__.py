"""jordanlab.train"""
