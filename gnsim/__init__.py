"""gnsim"""
