"""СБИС (Saby) EDO operator: the JSON-RPC 2.0 client the acts flow sends and tracks acts with."""
