from benchmarks import plan_scale

plan_scale.main()
