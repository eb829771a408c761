"""jordanlab.models"""
