"""
@article{RamirezAportela2019,
  title = {DeepRes: a new deep-learning- and aspect-based local resolution method for electron-microscopy maps},
  author = {Ramírez-Aportela, Erney and Mota, Javier and Conesa, Pablo and Carazo, Jose Maria and Sorzano, Carlos Oscar S.},
  journal = {IUCrJ},
  volume = {6},
  number = {6},
  pages = {1054--1063},
  year = {2019},
  doi = {10.1107/S2052252519011692}
}

@article{Cardone2013,
  title = {One number does not fit all: mapping local variations in resolution in cryo-EM reconstructions},
  author = {Cardone, Giovanni and Heymann, J. Bernard and Steven, Alasdair C.},
  journal = {Journal of Structural Biology},
  volume = {184},
  number = {2},
  pages = {226--236},
  year = {2013},
  doi = {10.1016/j.jsb.2013.08.002}
}
"""
