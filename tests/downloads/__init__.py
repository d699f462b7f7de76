"""Result files onto disk whole: cut bodies, compressed bodies, disk errors."""
