// placeholder until the module system lands
